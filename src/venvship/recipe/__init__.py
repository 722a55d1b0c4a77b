"""The recipe side: TOML recipes and pip requirement lines read into frozen dataclasses with
key-path errors, recipe TOML written back, and the original role's variables imported as a recipe.
"""
