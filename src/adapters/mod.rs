//! Adapters behind the ports: embedded (SQLite, local queue, memory cache) and distributed
//! (PostgreSQL, RabbitMQ, Redis).
