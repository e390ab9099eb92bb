"""Python ingestion assets of the example project (NYC flights 2013); sqlorch loads them."""
