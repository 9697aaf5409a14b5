"""API keys, service accounts and workspace roles. Independent of the Flask app in `app/`."""
