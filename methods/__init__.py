"""nerfkit's built-in methods, installed as `nerfkit_methods` and registered through entry points like any plug-in."""
