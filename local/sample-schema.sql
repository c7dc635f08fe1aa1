-- An e-commerce outbound schema (orders picked in warehouses, shipped by couriers), loaded by `npm run local`.
CREATE TABLE IF NOT EXISTS warehouses (
  id INT PRIMARY KEY,
  code CHAR(4) NOT NULL,
  city VARCHAR(60) NOT NULL,
  opened_on DATE NOT NULL
);
CREATE TABLE IF NOT EXISTS couriers (
  id INT PRIMARY KEY,
  name VARCHAR(60) NOT NULL,
  service ENUM('standard','express','same_day') NOT NULL
);
CREATE TABLE IF NOT EXISTS items (
  id INT PRIMARY KEY,
  sku VARCHAR(32) NOT NULL,
  item_type ENUM('book','toy','apparel','electronics','grocery') NOT NULL,
  unit_price DECIMAL(10,2) NOT NULL,
  attributes JSON
);
CREATE TABLE IF NOT EXISTS orders (
  id BIGINT UNSIGNED PRIMARY KEY,
  customer_email VARCHAR(120) NOT NULL,
  status ENUM('new','paid','picked','shipped','delivered','cancelled') NOT NULL,
  total DECIMAL(12,2) NOT NULL,
  warehouse_id INT NOT NULL,
  created_at DATETIME(6) NOT NULL,
  updated_at TIMESTAMP(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6)
);
CREATE TABLE IF NOT EXISTS order_items (
  order_id BIGINT UNSIGNED NOT NULL,
  line_no SMALLINT NOT NULL,
  item_id INT NOT NULL,
  quantity INT NOT NULL,
  PRIMARY KEY (order_id, line_no)
);
CREATE TABLE IF NOT EXISTS shipments (
  id BIGINT UNSIGNED PRIMARY KEY,
  order_id BIGINT UNSIGNED NOT NULL,
  courier_id INT NOT NULL,
  warehouse_id INT NOT NULL,
  shipped_at DATETIME(6) NOT NULL,
  tracking_no VARCHAR(40),
  weight_kg DECIMAL(8,3)
);
INSERT IGNORE INTO warehouses VALUES (1,'BER1','Berlin','2019-03-01'),(2,'MUC1','Munich','2020-06-15'),(3,'HAM1','Hamburg','2021-01-10');
INSERT IGNORE INTO couriers VALUES (1,'DHL','standard'),(2,'UPS','express'),(3,'Hermes','standard'),(4,'Bolt','same_day');
INSERT IGNORE INTO items VALUES
  (1,'BK-0001','book',12.99,'{"pages": 320}'),(2,'TY-0001','toy',24.50,'{"age": "3+"}'),(3,'AP-0001','apparel',39.90,'{"size": "M"}'),
  (4,'EL-0001','electronics',199.00,'{"warranty_months": 24}'),(5,'GR-0001','grocery',3.49,NULL);
