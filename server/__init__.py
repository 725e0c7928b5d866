"""Gradscope's server side: for now the command line; the FastAPI app comes with the runs issue."""
