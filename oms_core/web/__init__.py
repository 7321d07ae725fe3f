"""The pages Menara serves to people: the driver app (``driver/``) and the customer's
tracking page (``track/``). Static files and templates only; the handlers that serve
them are in ``oms_core.api.pages``."""
