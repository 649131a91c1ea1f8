"""HTTP routes, one module per resource.

classify, synthesize, preview (an upload as a JPEG a browser shows), operations (health, metrics, model card), and page
(the web page at ``/``).
"""
