"""Receiving and processing HL7: the durable inbox, the processor, its worker process,
the fast lane, and the service that runs them."""
