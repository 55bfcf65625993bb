"""The Responses way in: POST/GET /v1/responses and cancel (router.py), a request's input items
as the conversation's messages (items.py), starting a response's run (starting.py), and a
response's items and events rebuilt from its run (events.py), read now or followed
(reading.py); what it reads in schemas.py,
what it answers in objects.py."""
