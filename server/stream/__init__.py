"""Live streaming: the hub tails the store and fans committed events out to websocket clients."""
