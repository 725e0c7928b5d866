"""REST and websocket routes, one APIRouter per area."""
