"""Track: tokens and the links, pixels and addresses that carry them."""
