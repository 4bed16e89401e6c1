"""Event sources: generated transactions and weather, OpenWeather, and ksqlDB's pull queries."""
