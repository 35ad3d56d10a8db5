"""preservation.access"""
