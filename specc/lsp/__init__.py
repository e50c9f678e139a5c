"""The language server for ``.spec`` files (``specc lsp``, the ``specc[lsp]`` extra).

``analysis`` answers the editor's questions from specc's own phases (the loader ``specc check``
uses, the language table, ``specc fmt``, ``specc explain``) without any protocol; ``server``
speaks the Language Server Protocol over stdio with pygls. Nothing below this layer imports it.
"""
