"""HTTP routes, one module per resource: classify, synthesize, and operations (health, metrics, model card)."""
