"""Stores: the catalog (GET /stores/, /stores/<id>/), a store's attributes (weekly hours, holiday hours,
zone: GET and PUT) and its timeline (GET /stores/<id>/timeline/), one module each."""
