"""HTTP routes, one module per resource.

classify, synthesize, operations (health, metrics, model card), and page (the web page at ``/``).
"""
