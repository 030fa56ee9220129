"""The fleet's REST API (FastAPI) and the server that runs it inside the fleet process."""
