"""The evhub hub daemon, in rooms a RESERVE walks through (docs/architecture.md):

io/        bytes in and out: the gateway's loop, links, limits
router.py  dispatch of each validated message to the actor that owns its state, and batching
actors/    thin Pykka shells, one thread each: book, registry, locator, tracker
domain/    the pure rules the actors apply
store/     the durable state
http/      the HTTP API, event stream, metrics and dashboard
ocpp/      OCPP 1.6J chargers beside our own boards

messages.py  every typed message between actors, and every Outbox item
daemon.py    wires it all together; config.py and configdoc.py its settings
events.py    the EventBus the HTTP event stream listens to
clock.py, timefmt.py, secretfile.py, operatorkey.py  small shared helpers
"""
