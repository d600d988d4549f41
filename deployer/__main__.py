"""Allow ``python -m deployer``."""

from deployer.cli.app import main

main()
