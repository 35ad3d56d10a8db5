"""preservation.audit"""
