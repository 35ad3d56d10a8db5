"""preservation.storage"""
