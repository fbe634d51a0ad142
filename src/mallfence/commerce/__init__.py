"""Commerce: product catalog and stock per store, wishlists, click-and-collect orders, purchases, the signed
webhooks a venue's POS / ERP / commerce system sends, and the push candidates they give the decision engine."""
