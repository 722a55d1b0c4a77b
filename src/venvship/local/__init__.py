"""Both wings on one host: build a recipe into the host's blob cache and install it from there
(``venvship install RECIPE``), with no build host or registry.
"""
