"""The development inbox: a local SMTP sink (``serve --dev-inbox``) and its mailbox."""
