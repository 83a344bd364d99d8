"""Webhooks: job events signed per Standard Webhooks and delivered, with retries, to the
tenant's registered endpoints and to a request's own `webhook_url`.

`listener` turns job events into delivery rows, `delivery` sends one attempt and records it,
`scheduler` decides where attempts run (arq workers, or this process when embedded) and finds
deliveries whose message was lost, and `signing` makes the headers.
"""
