-- The bundled ClickHouse sample: the event analytics of a small web shop, in the database `analytics`.
-- It runs as is in chDB (26.x) and on a ClickHouse server. Statements end with a semicolon at the end of a
-- line (a loader may split on that: no string or comment below holds one). Every row is derived from
-- numbers() with fixed hashes, so every load produces the same data.
-- What it shows an introspection: table and column comments; MergeTree engines with ORDER BY, PRIMARY KEY
-- and PARTITION BY; LowCardinality, Nullable, Enum, Decimal, DateTime64, Array, Map, Tuple and Nested columns;
-- a ReplacingMergeTree read with FINAL; a sampling key; a materialized view writing into a target table
-- (TO ...) and one with an inner table; a plain view; a dictionary. Foreign keys: none declared (ClickHouse
-- has none); the comments name the joins.

CREATE DATABASE IF NOT EXISTS analytics COMMENT 'Event analytics of the web shop (sample)';

CREATE TABLE analytics.users
(
    user_id UInt64 COMMENT 'Surrogate key of the user account',
    signup_at DateTime('UTC') COMMENT 'When the account was created',
    country LowCardinality(String) COMMENT 'ISO 3166-1 alpha-2 country of the billing address',
    plan Enum8('free' = 1, 'pro' = 2, 'enterprise' = 3) COMMENT 'Current subscription plan',
    email Nullable(String) COMMENT 'Contact e-mail, NULL once the user asked to be forgotten',
    referrer_user_id Nullable(UInt64) COMMENT 'users.user_id of the user who referred this one',
    traits Map(String, String) COMMENT 'CRM traits by name: industry, company_size',
    tags Array(LowCardinality(String)) COMMENT 'Marketing segments: newsletter, beta, high_value, churn_risk'
)
ENGINE = MergeTree
ORDER BY user_id
COMMENT 'Registered user accounts, one row per account';

CREATE TABLE analytics.sessions
(
    session_id UInt64 COMMENT 'Surrogate key of the visit',
    user_id UInt64 COMMENT 'users.user_id of the visitor',
    started_at DateTime('UTC') COMMENT 'First hit of the visit',
    duration_s UInt32 COMMENT 'Seconds between the first and the last hit',
    device Tuple(type LowCardinality(String), os LowCardinality(String), browser LowCardinality(String)) COMMENT 'Device of the visit: type (desktop, mobile, tablet), os, browser',
    landing_page String COMMENT 'Path of the first page viewed',
    utm Nested(source LowCardinality(String), medium LowCardinality(String)) COMMENT 'UTM parameters of the landing URL, as parallel arrays',
    is_bounce Bool COMMENT 'True when the visit viewed a single page'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (user_id, started_at)
COMMENT 'Web visits (sessions) of users, partitioned by month';

CREATE TABLE analytics.events
(
    event_time DateTime64(3, 'UTC') COMMENT 'When the event happened (millisecond precision)',
    event_type LowCardinality(String) COMMENT 'page_view, search, add_to_cart, checkout, purchase or signup',
    user_id UInt64 COMMENT 'users.user_id of the actor',
    session_id UInt64 COMMENT 'sessions.session_id of the visit the event belongs to',
    page_url String COMMENT 'Path of the page the event happened on',
    properties Map(String, String) COMMENT 'Event attributes by name, e.g. search_term, product_id',
    revenue Nullable(Decimal(12, 2)) COMMENT 'Order value in USD for purchase events, NULL otherwise',
    ab_variants Array(String) COMMENT 'A/B test variants the user was exposed to'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (event_type, toDate(event_time), intHash32(user_id))
SAMPLE BY intHash32(user_id)
SETTINGS index_granularity = 1024
COMMENT 'Raw clickstream events, the widest table: filter on event_type and the event date first';

CREATE TABLE analytics.page_views
(
    view_id UInt64 COMMENT 'Surrogate key of the page view',
    session_id UInt64 COMMENT 'sessions.session_id of the visit',
    user_id UInt64 COMMENT 'users.user_id of the visitor',
    viewed_at DateTime('UTC') COMMENT 'When the page was shown',
    url String COMMENT 'Path of the page',
    referrer Nullable(String) COMMENT 'Referring URL, NULL for direct traffic',
    duration_ms UInt32 COMMENT 'Time on page in milliseconds',
    scroll_depth Float32 COMMENT 'Share of the page scrolled, 0 to 1'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(viewed_at)
PRIMARY KEY session_id
ORDER BY (session_id, viewed_at)
SETTINGS index_granularity = 1024
COMMENT 'Page views of the web shop, one row per page shown';

CREATE TABLE analytics.products
(
    product_id UInt32 COMMENT 'Surrogate key of the product',
    sku String COMMENT 'Stock keeping unit printed on the label',
    name String COMMENT 'Product name shown in the shop',
    category LowCardinality(String) COMMENT 'Catalogue category',
    price Decimal(10, 2) COMMENT 'List price in USD',
    attributes Map(String, String) COMMENT 'Attributes by name: colour, size',
    is_active Bool COMMENT 'False once the product is withdrawn from sale',
    updated_at DateTime('UTC') COMMENT 'Version of the row: the latest one wins (read with FINAL)'
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY product_id
COMMENT 'Product catalogue; price changes add a newer row, so read it with FINAL';

CREATE TABLE analytics.campaigns
(
    campaign_id UInt32 COMMENT 'Surrogate key of the campaign',
    name String COMMENT 'Campaign name',
    channel LowCardinality(String) COMMENT 'Marketing channel: search, social, email, display, affiliate',
    started_on Date COMMENT 'First day of the campaign',
    ended_on Nullable(Date) COMMENT 'Last day, NULL while it runs',
    budget Decimal(12, 2) COMMENT 'Total budget in USD',
    target_countries Array(LowCardinality(String)) COMMENT 'ISO countries the campaign targets'
)
ENGINE = MergeTree
ORDER BY campaign_id
COMMENT 'Marketing campaigns';

CREATE TABLE analytics.ad_clicks
(
    clicked_at DateTime('UTC') COMMENT 'When the ad was clicked',
    campaign_id UInt32 COMMENT 'campaigns.campaign_id of the ad',
    user_id Nullable(UInt64) COMMENT 'users.user_id when the clicker was known, NULL otherwise',
    cost Decimal(8, 4) COMMENT 'Cost of the click in USD'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(clicked_at)
ORDER BY (campaign_id, clicked_at)
COMMENT 'Paid ad clicks with their cost';

CREATE TABLE analytics.orders
(
    order_id UInt64 COMMENT 'Surrogate key of the order',
    user_id UInt64 COMMENT 'users.user_id of the buyer',
    session_id Nullable(UInt64) COMMENT 'sessions.session_id the order was placed in, NULL for phone orders',
    ordered_at DateTime('UTC') COMMENT 'When the order was placed',
    status Enum8('placed' = 1, 'paid' = 2, 'shipped' = 3, 'delivered' = 4, 'cancelled' = 5, 'refunded' = 6) COMMENT 'Fulfilment status',
    currency LowCardinality(String) COMMENT 'Currency the buyer paid in',
    total Decimal(12, 2) COMMENT 'Order value in USD: the sum of its order_items',
    shipping_address Tuple(country LowCardinality(String), city String, postcode String) COMMENT 'Where the order ships to',
    coupon_code Nullable(String) COMMENT 'Coupon redeemed, NULL when none',
    campaign_id Nullable(UInt32) COMMENT 'campaigns.campaign_id credited with the order, NULL when none'
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(ordered_at)
ORDER BY (user_id, ordered_at)
COMMENT 'Orders placed in the web shop';

CREATE TABLE analytics.order_items
(
    order_id UInt64 COMMENT 'orders.order_id of the order',
    line_no UInt16 COMMENT 'Position of the line in the order, from 1',
    product_id UInt32 COMMENT 'products.product_id of the item',
    quantity UInt16 COMMENT 'Units ordered',
    unit_price Decimal(10, 2) COMMENT 'Price per unit in USD at order time',
    discount Float32 COMMENT 'Discount on the line, 0 to 1'
)
ENGINE = MergeTree
ORDER BY (order_id, line_no)
COMMENT 'Lines of the orders, one per product ordered';

CREATE TABLE analytics.daily_revenue
(
    day Date COMMENT 'Order date',
    country LowCardinality(String) COMMENT 'Shipping country',
    orders UInt64 COMMENT 'Orders placed that day',
    revenue Decimal(18, 2) COMMENT 'Sum of the order totals in USD'
)
ENGINE = SummingMergeTree
ORDER BY (day, country)
COMMENT 'Revenue per day and shipping country, filled by mv_daily_revenue (sum the rows: merges are eventual)';

CREATE MATERIALIZED VIEW analytics.mv_daily_revenue TO analytics.daily_revenue
AS SELECT
    toDate(ordered_at) AS day,
    shipping_address.country AS country,
    count() AS orders,
    sum(total) AS revenue
FROM analytics.orders
GROUP BY day, country
COMMENT 'Keeps daily_revenue up to date on every insert into orders';

INSERT INTO analytics.users
SELECT
    number + 1 AS user_id,
    toDateTime('2023-01-01 00:00:00', 'UTC') + toIntervalSecond(number * 15731) AS signup_at,
    ['US', 'GB', 'DE', 'FR', 'NL', 'ES', 'IT', 'PL', 'SE', 'CA', 'AU', 'BR', 'IN', 'JP'][1 + cityHash64(number, 'country') % 14] AS country,
    ['free', 'free', 'free', 'free', 'free', 'free', 'pro', 'pro', 'pro', 'enterprise'][1 + cityHash64(number, 'plan') % 10] AS plan,
    if(number % 50 = 7, NULL, concat('user', toString(number + 1), '@example.com')) AS email,
    if(number % 7 = 3, 1 + cityHash64(number, 'referrer') % (number + 1), NULL) AS referrer_user_id,
    map(
        'industry', ['retail', 'saas', 'media', 'finance', 'health'][1 + cityHash64(number, 'industry') % 5],
        'company_size', ['1-10', '11-50', '51-200', '201-1000', '1000+'][1 + cityHash64(number, 'size') % 5]
    ) AS traits,
    arrayFilter(t -> cityHash64(number, t) % 3 = 0, ['newsletter', 'beta', 'high_value', 'churn_risk']) AS tags
FROM numbers(2000);

INSERT INTO analytics.sessions (session_id, user_id, started_at, duration_s, device, landing_page, utm.source, utm.medium, is_bounce)
SELECT
    number + 1 AS session_id,
    1 + cityHash64(number, 'user') % 2000 AS user_id,
    toDateTime('2024-01-01 00:00:00', 'UTC') + toIntervalSecond(number * 1291) AS started_at,
    toUInt32(cityHash64(number, 'duration') % 1800) AS duration_s,
    (
        ['desktop', 'desktop', 'mobile', 'mobile', 'mobile', 'tablet'][1 + cityHash64(number, 'device') % 6],
        ['windows', 'macos', 'ios', 'android', 'linux'][1 + cityHash64(number, 'os') % 5],
        ['chrome', 'safari', 'firefox', 'edge'][1 + cityHash64(number, 'browser') % 4]
    ) AS device,
    ['/', '/search', '/category/shoes', '/category/bags', '/product', '/sale'][1 + cityHash64(number, 'landing') % 6] AS landing_page,
    if(number % 3 = 0, [['google', 'facebook', 'newsletter', 'partner'][1 + cityHash64(number, 'src') % 4]], []) AS utm_source,
    if(number % 3 = 0, [['cpc', 'social', 'email', 'referral'][1 + cityHash64(number, 'src') % 4]], []) AS utm_medium,
    cityHash64(number, 'bounce') % 4 = 0 AS is_bounce
FROM numbers(6000);

INSERT INTO analytics.events
SELECT
    toDateTime64('2024-01-01 00:00:00', 3, 'UTC') + toIntervalMillisecond(number * 259200) AS event_time,
    ['page_view', 'page_view', 'page_view', 'page_view', 'page_view', 'search', 'search', 'add_to_cart', 'checkout', 'purchase', 'signup'][1 + cityHash64(number, 'type') % 11] AS event_type,
    1 + cityHash64(intDiv(number, 5), 'user') % 2000 AS user_id,
    1 + intDiv(number, 5) AS session_id,
    ['/', '/search', '/category/shoes', '/category/bags', '/product', '/cart', '/checkout'][1 + cityHash64(number, 'page') % 7] AS page_url,
    multiIf(
        event_type = 'search', map('search_term', ['sneakers', 'tote bag', 'rain jacket', 'socks', 'backpack'][1 + cityHash64(number, 'term') % 5]),
        event_type IN ('add_to_cart', 'purchase'), map('product_id', toString(1 + cityHash64(number, 'product') % 300)),
        map()
    ) AS properties,
    if(event_type = 'purchase', toDecimal64(5 + cityHash64(number, 'revenue') % 39500 / 100, 2), NULL) AS revenue,
    arrayFilter(v -> cityHash64(number, v) % 2 = 0, ['checkout_v2', 'dark_mode', 'free_shipping_banner']) AS ab_variants
FROM numbers(30000);

INSERT INTO analytics.page_views
SELECT
    number + 1 AS view_id,
    1 + intDiv(number, 2) AS session_id,
    1 + cityHash64(intDiv(number, 2), 'user') % 2000 AS user_id,
    toDateTime('2024-01-01 00:00:00', 'UTC') + toIntervalSecond(intDiv(number, 2) * 1291 + (number % 2) * 40) AS viewed_at,
    ['/', '/search', '/category/shoes', '/category/bags', '/product', '/cart', '/checkout'][1 + cityHash64(number, 'url') % 7] AS url,
    if(cityHash64(number, 'ref') % 3 = 0, NULL, ['https://www.google.com/', 'https://www.facebook.com/', 'https://news.example.org/'][1 + cityHash64(number, 'refsite') % 3]) AS referrer,
    toUInt32(500 + cityHash64(number, 'time') % 120000) AS duration_ms,
    toFloat32((cityHash64(number, 'scroll') % 101) / 100) AS scroll_depth
FROM numbers(12000);

INSERT INTO analytics.products
SELECT
    number + 1 AS product_id,
    concat('SKU-', leftPad(toString(number + 1), 5, '0')) AS sku,
    concat(['Classic', 'Urban', 'Trail', 'Studio', 'Coastal'][1 + cityHash64(number, 'adj') % 5], ' ', category) AS name,
    ['sneakers', 'boots', 'tote bag', 'backpack', 'rain jacket', 'socks'][1 + cityHash64(number, 'cat') % 6] AS category,
    toDecimal64(5 + cityHash64(number, 'price') % 19500 / 100, 2) AS price,
    map('colour', ['black', 'white', 'navy', 'olive', 'sand'][1 + cityHash64(number, 'colour') % 5], 'size', ['S', 'M', 'L', 'XL'][1 + cityHash64(number, 'size') % 4]) AS attributes,
    number % 25 != 0 AS is_active,
    toDateTime('2024-01-01 00:00:00', 'UTC') AS updated_at
FROM numbers(300);

-- A price change on every tenth product: a newer row that FINAL (or a merge) keeps instead of the first.
INSERT INTO analytics.products
SELECT product_id, sku, name, category, price * 0.9, attributes, is_active, toDateTime('2024-02-15 00:00:00', 'UTC')
FROM analytics.products
WHERE product_id % 10 = 0;

INSERT INTO analytics.campaigns
SELECT
    number + 1 AS campaign_id,
    concat(['Spring', 'Summer', 'Back to school', 'Black Friday', 'New year', 'Loyalty'][1 + number % 6], ' ', toString(2023 + intDiv(number, 12))) AS name,
    ['search', 'social', 'email', 'display', 'affiliate'][1 + cityHash64(number, 'channel') % 5] AS channel,
    toDate('2023-10-01') + toIntervalDay(number * 9) AS started_on,
    if(number % 4 = 3, NULL, toDate('2023-10-01') + toIntervalDay(number * 9 + 30)) AS ended_on,
    toDecimal64(1000 + cityHash64(number, 'budget') % 49000, 2) AS budget,
    arrayFilter(c -> cityHash64(number, c) % 2 = 0, ['US', 'GB', 'DE', 'FR', 'NL', 'ES']) AS target_countries
FROM numbers(24);

INSERT INTO analytics.ad_clicks
SELECT
    toDateTime('2024-01-01 00:00:00', 'UTC') + toIntervalSecond(number * 971) AS clicked_at,
    toUInt32(1 + cityHash64(number, 'campaign') % 24) AS campaign_id,
    if(cityHash64(number, 'known') % 3 = 0, NULL, 1 + cityHash64(number, 'user') % 2000) AS user_id,
    toDecimal64(0.05 + cityHash64(number, 'cost') % 300 / 100, 4) AS cost
FROM numbers(8000);

INSERT INTO analytics.order_items
SELECT
    order_id,
    toUInt16(line_no) AS line_no,
    toUInt32(1 + cityHash64(order_id, line_no, 'product') % 300) AS product_id,
    toUInt16(1 + cityHash64(order_id, line_no, 'quantity') % 3) AS quantity,
    toDecimal64(5 + cityHash64(order_id, line_no, 'price') % 19500 / 100, 2) AS unit_price,
    toFloat32(if(cityHash64(order_id, line_no, 'discount') % 5 = 0, 0.1, 0)) AS discount
FROM
(
    SELECT number + 1 AS order_id, arrayJoin(range(1, 2 + toUInt8(cityHash64(number, 'lines') % 4))) AS line_no
    FROM numbers(4000)
);

INSERT INTO analytics.orders
SELECT
    o.order_id,
    1 + cityHash64(o.order_id, 'user') % 2000 AS user_id,
    if(o.order_id % 20 = 0, NULL, 1 + cityHash64(o.order_id, 'session') % 6000) AS session_id,
    toDateTime('2024-01-01 00:00:00', 'UTC') + toIntervalSecond(o.order_id * 1931) AS ordered_at,
    ['placed', 'paid', 'shipped', 'delivered', 'delivered', 'delivered', 'delivered', 'cancelled', 'refunded'][1 + cityHash64(o.order_id, 'status') % 9] AS status,
    ['USD', 'USD', 'EUR', 'EUR', 'GBP'][1 + cityHash64(o.order_id, 'currency') % 5] AS currency,
    toDecimal64(o.total, 2) AS total,
    (
        ['US', 'GB', 'DE', 'FR', 'NL', 'ES', 'IT', 'PL', 'SE', 'CA', 'AU', 'BR', 'IN', 'JP'][1 + cityHash64(o.order_id, 'country') % 14],
        ['Springfield', 'Riverton', 'Lakeside', 'Hillview', 'Portmore'][1 + cityHash64(o.order_id, 'city') % 5],
        leftPad(toString(cityHash64(o.order_id, 'postcode') % 100000), 5, '0')
    ) AS shipping_address,
    if(cityHash64(o.order_id, 'coupon') % 6 = 0, concat('SAVE', toString(5 * (1 + cityHash64(o.order_id, 'pct') % 4))), NULL) AS coupon_code,
    if(cityHash64(o.order_id, 'credited') % 3 = 0, toUInt32(1 + cityHash64(o.order_id, 'campaign') % 24), NULL) AS campaign_id
FROM
(
    SELECT order_id, sum(quantity * unit_price * (1 - discount)) AS total
    FROM analytics.order_items
    GROUP BY order_id
) AS o
ORDER BY o.order_id;

CREATE MATERIALIZED VIEW analytics.mv_events_hourly
ENGINE = SummingMergeTree
PARTITION BY toYYYYMM(hour)
ORDER BY (hour, event_type)
POPULATE
AS SELECT
    toStartOfHour(event_time) AS hour,
    event_type,
    count() AS events,
    sum(ifNull(revenue, 0)) AS revenue
FROM analytics.events
GROUP BY hour, event_type
COMMENT 'Events and revenue per hour and event type (its own inner table); sum the rows: merges are eventual';

CREATE VIEW analytics.v_user_lifetime_value
AS SELECT
    u.user_id,
    u.country,
    u.plan,
    count(o.order_id) AS orders,
    sum(o.total) AS lifetime_value_usd
FROM analytics.users AS u
LEFT JOIN analytics.orders AS o ON o.user_id = u.user_id AND o.status NOT IN ('cancelled', 'refunded')
GROUP BY u.user_id, u.country, u.plan
COMMENT 'Orders and lifetime value per user, cancelled and refunded orders left out';

CREATE DICTIONARY analytics.product_names
(
    product_id UInt64,
    name String,
    category String
)
PRIMARY KEY product_id
SOURCE(CLICKHOUSE(DB 'analytics' TABLE 'products'))
LIFETIME(MIN 0 MAX 0)
LAYOUT(HASHED())
COMMENT 'Product name and category by product_id, for dictGet';
