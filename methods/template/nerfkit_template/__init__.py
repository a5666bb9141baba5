"""A template nerfkit plug-in: vanilla NeRF plus one idea of its own, registered as `kit-train my-method`."""
