"""What model calls cost each key owner: the ledger, the prices, the usage report."""
