"""pyparsing grammars for NGINX and PHP-FPM logs and configs.

Importable on its own: nothing here imports ``processor``.
"""
