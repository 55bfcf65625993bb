"""Language model providers behind one interface."""
