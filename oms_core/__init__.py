"""Order management core: orders and their state machine, stock, verification, tracking.

The schema is ``menara/migrations/0002_oms.sql``. Every function takes an open psycopg
connection and runs in one transaction of its own (a savepoint inside the caller's), so
a refused change leaves nothing behind. Settings (lead time, service area) are keyword
arguments with documented defaults; nothing here reads the environment.

    order = orders.create_order(conn, OrderIn(...))
    problems = verify.verify(conn, order.id, now=now)      # [] → verified
    orders.transition(conn, order.id, OrderState.RESERVED, actor="desk")
"""
