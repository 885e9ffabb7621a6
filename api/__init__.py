"""The HTTP door: Falcon app factory, resources, middleware, error mapping, schemas."""
