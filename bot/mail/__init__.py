"""E-mail to customers: templates, composing, sending over SMTP."""
