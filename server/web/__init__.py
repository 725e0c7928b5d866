"""HTTP: create_app, the pages, security and limits middleware, and the REST/websocket API."""
