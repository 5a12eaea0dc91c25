"""The Kafka ingress (``manage.py runkafka``, docs/kafka.md): job submissions consumed from a topic.

* :mod:`~jobs.kafka.messages`: a message's bytes onto the :class:`~jobs.validation.JobSpec` a REST body
  becomes, its idempotency key, and the headers that say why a refused one went to the dead-letter topic.
* :mod:`~jobs.kafka.ingress`: the loop: submit through :mod:`jobs.service`, then commit the offset.
* :mod:`~jobs.kafka.connect`: the Kafka client (kafka-python, the standard protocol) as the loop uses it.

Only this package imports ``kafka``.
"""
