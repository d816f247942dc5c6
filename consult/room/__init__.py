"""The consult room: a WebSocket per consult (docs/protocols.md, "Consult room").

* ``consumer``  – the socket: access on connect and per message, typed messages, relay;
* ``schemas``   – the client messages, validated by pydantic (a discriminated union);
* ``presence``  – who is in the room, kept per connection from channel-layer announcements;
* ``ratelimit`` – the per-connection token bucket;
* ``services``  – chat (persisted, numbered for resume), admission, the room's group events;
* ``files``     – file sharing through object storage; ``views`` / ``urls`` its HTTP side.
"""
