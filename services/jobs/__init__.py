"""Jobs, the durable side of every queued task: the outbox row written with the change it belongs
to (``outbox``), a job's states and their transitions (``states``, ``machine``), parents and their
children (``children``), progress (``progress``) and what clients poll (``views``)."""
