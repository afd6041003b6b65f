"""One module per Placement resource: thin handlers (parse, authorize, call, render)."""
