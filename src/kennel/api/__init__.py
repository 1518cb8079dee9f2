"""The web shell: the app, its middleware, HTTP helpers, the API's errors and documents."""
