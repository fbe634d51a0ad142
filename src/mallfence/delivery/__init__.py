"""Getting notifications to apps: the outbox models and the FCM push side."""
