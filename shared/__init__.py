"""Contracts any two roles share: the task spec, the Flower wire keys, the REST schemas,
accounting, hash chains, signing, the model registry and pre-processing. Imports no
role (client, server, audit) and nothing above them."""
