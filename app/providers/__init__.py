"""Model providers: one protocol, one module per vendor."""
