"""badgateway: explains every NGINX 502/504 in a PHP-FPM stack."""

__version__ = "0.1.0"
