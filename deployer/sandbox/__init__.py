"""The sandbox Kubernetes cluster of local deployments: a loopback API server, a scheduler, a Job
controller and simulated kubelets that follow the local IM's Dummy VMs. See ``deployer.sandbox.server``."""
