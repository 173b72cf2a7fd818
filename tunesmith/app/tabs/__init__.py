"""One module per tab. Each has ``build(ctx)`` (layout, registering every widget) and
``wire(ctx)`` (events), called after all tabs are built so a handler can read any field."""
