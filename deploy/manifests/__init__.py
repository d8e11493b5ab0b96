"""The offline checks of deploy/, one module per job; deploy/test_manifests.py runs them."""
