"""Alert lifecycle, subscriptions and delivery (Alertmanager semantics), testable without Kafka.

Flow::

    detector verdicts -> observations.py -> lifecycle.AlertLifecycle (pending/firing/resolved, Redis)
        -> changed alerts (AlertInstance) -> routing.Router (routes, silences, group_by timing)
        -> NotificationGroup -> dispatcher.Dispatcher -> one queue + task per receiver -> sinks/*

* ``model``        the records: AlertInstance, Matcher, Route, Silence, receivers, NotificationGroup
* ``lifecycle``    the state machine (``step``) and the batch evaluator over a state store
* ``state_store``  where lifecycle state lives: Redis (hash per fingerprint, CAS script) or memory
* ``observations`` detector verdicts -> "condition active/inactive" observations
* ``routing``      routes + silences + aggregation groups -> notification groups
* ``store``        routes and silences CRUD in Redis (for the HTTP API and the CLI)
* ``cloudevents``  the CloudEvents 1.0 JSON envelope of every notification
* ``dispatcher``   fan-out to receivers, isolated from each other
* ``sinks``        kafka, webhook, alertmanager, sse
"""
