"""preservation.ingest"""
