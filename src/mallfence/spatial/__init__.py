"""Pure spatial core: geometry validation, local metric projection, zone index. No I/O."""
