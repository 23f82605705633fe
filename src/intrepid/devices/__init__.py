"""intrepid.devices"""
