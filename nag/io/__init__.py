"""The ground floor: reading files nag does not control (bounded, link-proof) and writing atomically, confined to
the folder nag writes into. Every layer may use it; it imports only nag.config."""
