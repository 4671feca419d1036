"""Product-shaped stand-in for the vendor's Smart ID Messaging image (CI only)."""
