"""In-store staff: accounts, scanning a shopper's identity code, the customer card, store alerts."""
