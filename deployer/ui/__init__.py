"""The local web dashboard (``deployer ui``): deployments, elasticity, simulator results, classes.

Starlette and uvicorn come with the ``ui`` extra; only ``deployer ui`` imports this package.
"""
